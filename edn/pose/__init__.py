"""Pose extraction: detectors, OpenPose JSON, the main person, previews.

- :mod:`edn.pose.detect`: :func:`~edn.pose.detect.detect` picks the backend and
  returns one :class:`~edn.pose.keypoints.PoseSequence` per subject;
- :mod:`edn.pose.mediapipe_holistic`: the default backend and its mapping tables;
- :mod:`edn.pose.openpose`: OpenPose through pyopenpose;
- :mod:`edn.pose.openpose_json`: OpenPose's JSON files, read and written;
- :mod:`edn.pose.main_person`: which person is the subject;
- :mod:`edn.pose.preview`: keypoints drawn over the frames, as a video.

Nothing heavy is imported here; MediaPipe loads only when its backend runs.
"""
