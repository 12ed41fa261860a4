"""The small language that the shapes dataset speaks.

Every caption describes one object::

    a small red circle

or two objects in a spatial relation::

    a small red circle left of a large blue square
    a large green cross above a small green square

An object is three words: a size, a colour and a shape. With 2 sizes, 6 colours and 4 shapes there
are 2 * 6 * 4 = 48 objects, so 48 one-object captions. A two-object caption picks an object, a
relation and a *different* second object: 48 * 2 * 47 = 4,512 captions. Together: 4,560.

Because the language is this small we can list every caption, which is what makes zero-shot
classification over "all captions of the grammar" and exact per-attribute metrics possible.

Six colour-shape pairs are held out of training (``HELD_OUT_PAIRS``). The model sees red things
and it sees squares, but never a red square; the compositional test split asks whether it can
still recognise one. That is the question of compositional generalisation.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan")
SIZES = ("small", "large")
RELATIONS = ("left of", "above")

# (colour, shape) pairs that never appear in the train, val or i.i.d. test splits. Each colour is
# held out exactly once, so every colour is still seen on three other shapes, and no shape is held
# out more than twice, so every shape is still seen in at least four colours.
HELD_OUT_PAIRS = (
    ("red", "square"),
    ("green", "triangle"),
    ("blue", "cross"),
    ("yellow", "circle"),
    ("magenta", "triangle"),
    ("cyan", "circle"),
)

# The kinds of one-word-change hard negatives that `one_edit_variants` produces, in a fixed order.
EDIT_KINDS = ("colour", "shape", "size", "relation", "order")

# Every word the grammar can produce, in a fixed order (the tokenizer's vocabulary).
VOCABULARY = ("a",) + SIZES + COLOURS + SHAPES + ("left", "of", "above")

# The longest caption, "a small red circle left of a large blue square", has 10 words;
# with <bos> and <eos> around it that is 12 tokens.
MAX_WORDS = 10


class Obj(NamedTuple):
    """One object of a scene: the three words that describe it, in caption order."""

    size: str
    colour: str
    shape: str


class Scene(NamedTuple):
    """What a caption says: one or two objects and, for two, the relation between them.

    For two objects the relation reads "objects[0] <relation> objects[1]".
    """

    objects: Tuple[Obj, ...]
    relation: Optional[str]


# All 48 objects in a fixed order: size, then colour, then shape, like the words of a caption.
ALL_OBJECTS = tuple(Obj(size, colour, shape) for size in SIZES for colour in COLOURS for shape in SHAPES)


def is_held_out(obj) -> bool:
    """True if this object's colour-shape pair is one of ``HELD_OUT_PAIRS``."""
    obj = _as_obj(obj, "is_held_out")
    return (obj.colour, obj.shape) in HELD_OUT_PAIRS


def contains_held_out(caption: str) -> bool:
    """True if any object of the caption is a held-out colour-shape pair."""
    return any(is_held_out(obj) for obj in parse_caption(caption).objects)


def caption_of(objects, relation: Optional[str] = None) -> str:
    """Write the caption for one object, or for two objects in a relation.

    ``objects`` is a sequence of one or two ``Obj`` (or plain ``(size, colour, shape)`` tuples).
    Two objects need a relation from ``RELATIONS`` and must differ in at least one attribute:
    "a small red circle left of a small red circle" is not part of the grammar.
    """
    objects = [_as_obj(obj, "caption_of") for obj in objects]
    if len(objects) == 1:
        if relation is not None:
            raise ValueError(f"caption_of: one object takes no relation, got relation={relation!r}")
        return _object_words(objects[0])
    if len(objects) == 2:
        if relation not in RELATIONS:
            raise ValueError(f"caption_of: two objects need a relation from {RELATIONS}, got {relation!r}")
        if objects[0] == objects[1]:
            raise ValueError(f"caption_of: the two objects must differ, got {objects[0]} twice")
        return f"{_object_words(objects[0])} {relation} {_object_words(objects[1])}"
    raise ValueError(f"caption_of: a caption describes 1 or 2 objects, got {len(objects)}")


def parse_caption(text: str) -> Scene:
    """Read a caption back into a ``Scene`` (the inverse of ``caption_of``).

    Upper/lower case and extra spaces are forgiven; anything else that is not a caption of the
    grammar raises ValueError, so a metric can count it as wrong.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_caption: expected a str, got {type(text).__name__}")
    words = text.lower().split()
    first = _parse_object(words[:4], text)
    rest = words[4:]
    if not rest:
        return Scene((first,), None)
    for relation in RELATIONS:
        relation_words = relation.split()
        if rest[: len(relation_words)] == relation_words:
            second = _parse_object(rest[len(relation_words):], text)
            if second == first:
                raise ValueError(f"parse_caption: {text!r} names the same object twice")
            return Scene((first, second), relation)
    raise ValueError(f"parse_caption: {text!r} has no relation from {RELATIONS} after its first object")


def is_valid_caption(text) -> bool:
    """True if ``text`` is a caption of the grammar (handy to score a caption decoder's output)."""
    try:
        parse_caption(text)
    except (ValueError, TypeError):
        return False
    return True


def one_object_captions() -> list:
    """The 48 one-object captions, in the fixed order of ``ALL_OBJECTS``."""
    return [caption_of([obj]) for obj in ALL_OBJECTS]


def two_object_captions() -> list:
    """The 4,512 two-object captions: first object, then relation, then a different second object."""
    return [
        caption_of([a, b], relation)
        for a in ALL_OBJECTS
        for relation in RELATIONS
        for b in ALL_OBJECTS
        if b != a
    ]


def all_captions() -> list:
    """All 4,560 captions of the grammar: the 48 one-object ones first, then the 4,512 others."""
    return one_object_captions() + two_object_captions()


def one_edit_variants(caption: str) -> dict:
    """Hard negatives for a caption: every valid caption that differs from it in exactly one thing.

    Returns a dict with one list per kind of edit in ``EDIT_KINDS``:

    - "colour": one object gets another colour (5 per object),
    - "shape": one object gets another shape (3 per object),
    - "size": one object gets the other size (1 per object),
    - "relation": "left of" becomes "above" or back (two objects only),
    - "order": the two objects swap places, so "A left of B" becomes "B left of A" (two objects only).

    Kinds that do not apply (relation and order for one object) map to empty lists. An edit that
    would make the two objects identical is skipped: that caption is not in the grammar. The
    variants may contain held-out pairs; they are captions to score against, not training data.

    A model that understands the caption must score the true one above all of these; a bag of
    words, for example, cannot tell the "order" variant from the truth.
    """
    scene = parse_caption(caption)
    variants = {kind: [] for kind in EDIT_KINDS}
    choices = {"colour": COLOURS, "shape": SHAPES, "size": SIZES}
    for kind, values in choices.items():
        for slot, obj in enumerate(scene.objects):
            for value in values:
                if value == getattr(obj, kind):
                    continue
                objects = list(scene.objects)
                objects[slot] = obj._replace(**{kind: value})
                if len(objects) == 2 and objects[0] == objects[1]:
                    continue
                variants[kind].append(caption_of(objects, scene.relation))
    if len(scene.objects) == 2:
        a, b = scene.objects
        other_relation = [r for r in RELATIONS if r != scene.relation]
        variants["relation"] = [caption_of([a, b], r) for r in other_relation]
        variants["order"] = [caption_of([b, a], scene.relation)]
    return variants


def _object_words(obj: Obj) -> str:
    return f"a {obj.size} {obj.colour} {obj.shape}"


def _as_obj(obj, who: str) -> Obj:
    """Accept an ``Obj`` or a plain (size, colour, shape) tuple, and check each word."""
    if not isinstance(obj, tuple) or len(obj) != 3:
        raise TypeError(f"{who}: an object is a (size, colour, shape) tuple, got {obj!r}")
    obj = Obj(*obj)
    if obj.size not in SIZES or obj.colour not in COLOURS or obj.shape not in SHAPES:
        raise ValueError(
            f"{who}: {tuple(obj)} is not an object of the grammar "
            f"(sizes {SIZES}, colours {COLOURS}, shapes {SHAPES})"
        )
    return obj


def _parse_object(words: list, text: str) -> Obj:
    """Read "a <size> <colour> <shape>" from exactly four words."""
    if (
        len(words) != 4
        or words[0] != "a"
        or words[1] not in SIZES
        or words[2] not in COLOURS
        or words[3] not in SHAPES
    ):
        raise ValueError(
            f"parse_caption: {text!r} is not a caption of the grammar; each object must read "
            f"'a <size> <colour> <shape>' with sizes {SIZES}, colours {COLOURS}, shapes {SHAPES}"
        )
    return Obj(words[1], words[2], words[3])
