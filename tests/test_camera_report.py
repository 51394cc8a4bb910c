"""A registered camera in what the user reads: the one-line fallback message (edn.background.plate), the camera
section of the evaluation page (edn.evaluation.report) and evaluation on a moving camera's held-out frames."""

from __future__ import annotations

import logging

import pytest

from edn.background.plate import PlateReport, fallback_message, plate_message


def _report(**changes) -> PlateReport:
    """A tiny plate report: a target whose registered frames still differ from the mosaic by 9.4."""
    values = dict(subject="fountain", frame_size=(128, 80), frames_used=40, camera_residual=14.25,
                  max_camera_residual=6.0, static=False, filled_fraction=0.01, person_fraction=0.1,
                  registered_residual=9.43, background_moves=True, camera_motion=7.5, motion_model="similarity",
                  reference_frame=20, registered_frames=40, mosaic_size=(140, 84), reference_origin=(6, 2))
    return PlateReport(**{**values, **changes})


def test_the_fallback_is_one_line_naming_the_target_the_residual_and_what_to_do() -> None:
    line = fallback_message(_report())
    assert "\n" not in line
    assert line.startswith("target fountain: the background moves (residual 9.4 above 6.0 after registering 40 "
                           "frames to frame 20 by a similarity, 14.2 before)")
    for remedy in ("holds still", "raise background.max_camera_residual", "training.method: paper"):
        assert remedy in line
    # The plate stage logs the same line, as a warning; a still camera says so instead of the registration.
    assert plate_message(_report()) == (logging.WARNING, line)
    still = fallback_message(_report(motion_model="identity", registered_residual=12.0, camera_residual=12.0))
    assert "(residual 12.0 above 6.0 with the camera still, 12.0 before)" in still


@pytest.mark.parametrize("residual", [2.5, float("inf")])
def test_too_few_registered_frames_is_said_as_such(residual) -> None:
    line = fallback_message(_report(registered_residual=residual, registered_frames=3))
    assert "\n" not in line and line.startswith("target fountain: the background moves (only 3 frames could be "
                                                "registered to frame 20: ")
    assert ("residual 2.5" in line) == (residual == 2.5) and "against the limit 6.0" in line and "inf" not in line


def test_a_background_that_holds_still_is_no_fallback() -> None:
    level, line = plate_message(_report(background_moves=False, static=True, registered_residual=1.2))
    assert level == logging.INFO and "the camera moves up to 7.5 px" in line and "whole frame" not in line
