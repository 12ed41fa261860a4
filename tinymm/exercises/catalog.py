"""Every coded exercise, in the order a learner meets them (lesson by lesson).

To add one: define it in the lesson's module (``lessonNN.py``) and list it here. The list is
sorted by lesson number (stable, so exercises of one lesson keep the order written here).
"""
from . import lesson02, lesson04, lesson05, lesson06, lesson08, lesson09, lesson11, lesson12

EXERCISES = sorted([
    lesson02.BACKWARD_WALK,
    lesson04.LINEAR,
    lesson04.RELU,
    lesson04.BROADCASTING,
    lesson05.SOFTMAX_CROSS_ENTROPY,
    lesson06.IM2COL,
    lesson06.CONV2D,
    lesson06.MAX_POOL2D,
    lesson08.EMBEDDING,
    lesson09.L2_NORMALIZE,
    lesson11.CLIP_LOSS,
    lesson12.CLIP_STEP,
], key=lambda ex: int(ex.lesson))


def find(key):
    """The exercises a learner means by ``key``: a name ("linear"), or a lesson number ("04", "4").

    Returns a list (a lesson can have several exercises); empty when nothing matches.
    """
    key = key.strip().lower()
    if key.isdigit():
        return [ex for ex in EXERCISES if int(ex.lesson) == int(key)]
    exact = [ex for ex in EXERCISES if ex.name == key]
    if exact:
        return exact
    return [ex for ex in EXERCISES if key in ex.name]


def next_after(exercise):
    """The exercise that follows ``exercise`` in the course, or None after the last one."""
    index = EXERCISES.index(exercise)
    return EXERCISES[index + 1] if index + 1 < len(EXERCISES) else None
