"""The notes app's tests, run by the build's gate (`test_cmd`)."""

import subprocess
import sys
import unittest

from notes import create_app


class NotesTest(unittest.TestCase):
    def setUp(self):
        self.client = create_app().test_client()

    def test_index_lists_the_notes(self):
        page = self.client.get("/")
        self.assertEqual(page.status_code, 200)
        self.assertIn(b"ship it", page.data)

    def test_a_note_is_added_with_its_date_normalised(self):
        made = self.client.post("/api/notes", json={"title": "a b", "due": "March 3, 2024"})
        self.assertEqual(made.status_code, 201)
        self.assertEqual(made.get_json(), {"title": "a b", "due": "2024-03-03", "link": "/notes/a%20b"})
        self.assertEqual(len(self.client.get("/api/notes").get_json()), 3)

    def test_pip_works_in_the_tests(self):
        # The virtualenv's pip, not Debian's externally managed one.
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", "wheelhouse", "six"],
            capture_output=True, text=True,
        )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)


if __name__ == "__main__":
    unittest.main()
