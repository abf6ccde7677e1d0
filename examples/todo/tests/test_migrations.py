"""Static checks of the migration list: no database needed."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import migrate  # noqa: E402


class Migrations(unittest.TestCase):
    def test_versions_are_increasing_and_unique(self):
        versions = [m[0] for m in migrate.MIGRATIONS]
        self.assertEqual(versions, sorted(set(versions)))
        self.assertEqual(versions[0], 1)

    def test_users_have_emails_for_sanitize(self):
        # The sanitize step in .branchbox/config.yaml rewrites users.email.
        users = [m for m in migrate.MIGRATIONS if "CREATE TABLE users" in m[2]]
        self.assertEqual(len(users), 1)
        self.assertIn("email", users[0][2])


if __name__ == "__main__":
    unittest.main()
