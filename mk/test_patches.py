#!/usr/bin/env python3
"""Unit tests of mk/patches.py's plan: every overlay file and EDITS entry
lands in exactly one patch, and the generator names what does not.  Fast
(no git, no QEMU tree): mk/check.sh runs it, so that a new file the plan
does not place fails `make check`, not only `make check-patches`."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overlay  # noqa: E402
import patches  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subjects(placed, item):
    return [p.subject for p, files, edits in placed if item in files + edits]


class PlanTest(unittest.TestCase):
    def setUp(self):
        self.series = patches.fix_patches() + patches.PLAN
        self.files = overlay.overlay_files(PROJECT)
        self.edits = sorted(overlay.EDITS)

    def test_the_overlay_is_placed(self):
        placed = patches.place(self.series, self.files, self.edits)
        for item in self.files + self.edits:
            self.assertEqual(len(subjects(placed, item)), 1, item)
        self.assertTrue(all(files or edits or p.fix for p, files, edits in placed))

    def test_fixes_come_first_one_each(self):
        self.assertEqual([p.subject for p in self.series[:len(overlay.FIXES)]],
                         [subject for subject, _body, _files in overlay.FIXES])
        self.assertTrue(all(p.fix is None for p in patches.PLAN))

    def test_an_unplaced_file_is_named(self):
        with self.assertRaises(patches.PlanError) as e:
            patches.place(self.series, self.files + ["hw/misc/vfio-cxl-new.c"], self.edits)
        self.assertIn("file hw/misc/vfio-cxl-new.c is in no patch", str(e.exception))
        with self.assertRaises(patches.PlanError) as e:
            patches.place(self.series, self.files, self.edits + ["hw/misc/meson.build"])
        self.assertIn("EDITS entry hw/misc/meson.build is in no patch", str(e.exception))

    def test_a_file_placed_twice_is_named(self):
        twice = self.series + [patches.Patch("twice", "twice", "body", files=["hw/vfio/*"])]
        with self.assertRaises(patches.PlanError) as e:
            patches.place(twice, self.files, self.edits)
        self.assertIn("file hw/vfio/cxl-host.c is in more than one patch", str(e.exception))
        self.assertIn("'twice'", str(e.exception))

    def test_a_glob_that_places_nothing_is_named(self):
        stale = self.series + [patches.Patch("stale", "stale", "body", files=["hw/gone/*"])]
        with self.assertRaises(patches.PlanError) as e:
            patches.place(stale, self.files, self.edits)
        self.assertIn("glob 'hw/gone/*' of 'stale' matches nothing", str(e.exception))

    def test_new_target_files_fall_into_their_patch(self):
        # Files another target adds go where their x86_64 siblings are.
        placed = patches.place(
            self.series,
            self.files + ["tests/functional/aarch64/test_vfio_cxl.py"],
            self.edits + ["tests/functional/aarch64/meson.build"])
        functional = subjects(placed, "tests/functional/x86_64/test_vfio_cxl.py")
        self.assertEqual(subjects(placed, "tests/functional/aarch64/test_vfio_cxl.py"), functional)
        self.assertEqual(subjects(placed, "tests/functional/aarch64/meson.build"), functional)

    def test_message(self):
        for p in self.series:
            text = patches.message(p)
            lines = text.splitlines()
            self.assertEqual(lines[0], p.subject)
            self.assertLessEqual(len(p.subject), 76, p.subject)
            self.assertEqual(lines[1], "")
            self.assertEqual(lines[-1], patches.SIGNOFF)
            self.assertTrue(all(len(line) <= 72 for line in lines[2:]), p.subject)


if __name__ == "__main__":
    unittest.main(verbosity=1)
