"""Stage 6, exemplars: the target's own frames warped to a requested pose.

Between the background stage and the models: for each requested pose, one of
the target's training frames is chosen (``select``), what the person holds is
painted out of its legs (``props``), and its person is moved to the pose part by
part (``warp``); over the plate, with no learning, that is the
``pose_warp`` method (``pose_warp``). A generator that corrects the exemplars
leaves their faces as they are (``own_face``, where synthesis keeps them).
Imports from core, ingest, pose, normalize, labels and background only.
"""
