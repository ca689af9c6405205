"""Reference captions of a scene from a small grammar with paraphrases (2PSC-style captioning)."""

from __future__ import annotations

import random
from typing import Any

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight")

PLURALS = {
    "person": "people",
    "face": "faces",
    "ball": "balls",
    "box": "boxes",
    "cup": "cups",
    "tree": "trees",
    "car": "cars",
    "object": "objects",
}


def _count(n: int, noun: str) -> str:
    """A cardinal phrase: 'no people', 'one person', 'three cups'."""
    word = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
    return f"{word} {noun if n == 1 else PLURALS[noun]}"


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _object_phrases(objects: list[dict[str, Any]]) -> list[str]:
    """'two red balls', 'a green tree' ... grouped by (colour, kind), in order of first mention."""
    groups: dict[tuple[str, str], int] = {}
    for obj in objects:
        key = (obj["colour"], obj["category"])
        groups[key] = groups.get(key, 0) + 1
    phrases = []
    for (colour, kind), n in groups.items():
        phrases.append(
            _article(f"{colour} {kind}")
            if n == 1
            else f"{NUMBER_WORDS[n]} {colour} {PLURALS[kind]}"
        )
    return phrases


def _person_phrase(face: dict[str, Any], rng: random.Random, max_attributes: int = 2) -> str:
    """'a smiling person with glasses and red hair', 'a bald person with a beard' (no cardinals)."""
    with_parts = []
    if face["glasses"]:
        with_parts.append("glasses")
    if face["beard"]:
        with_parts.append("a beard")
    elif face["moustache"]:
        with_parts.append("a moustache")
    if face["hair"] != "bald":
        with_parts.append(face["hair"])
    if face["eyes_closed"]:
        with_parts.append("closed eyes")
    rng.shuffle(with_parts)
    adjectives = []
    if face["smiling"]:
        adjectives.append("smiling")
    if face["hair"] == "bald":
        adjectives.append("bald")
    budget = max_attributes
    adjectives = adjectives[:budget]
    with_parts = with_parts[: max(0, budget - len(adjectives))]
    phrase = _article(" ".join(adjectives + ["person"]))
    if with_parts:
        phrase += " with " + _join(with_parts)
    return phrase


def _item_phrase(item: dict[str, Any], rng: random.Random) -> str:
    if item["category"] == "face":
        return _person_phrase(item, rng, max_attributes=1)
    return _article(f"{item['colour']} {item['category']}")


def _relation(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Where ``a`` is relative to ``b`` in the picture, from the box centres."""
    ax, ay = (a["box"][0] + a["box"][2]) / 2, (a["box"][1] + a["box"][3]) / 2
    bx, by = (b["box"][0] + b["box"][2]) / 2, (b["box"][1] + b["box"][3]) / 2
    dx, dy = ax - bx, ay - by
    if abs(dx) >= abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "above" if dy < 0 else "below"


def scene_captions(
    annotations: list[dict[str, Any]], outdoor: bool, rng: random.Random, size: int, count: int = 5
) -> list[str]:
    """Five reference captions from a small grammar with paraphrases: counts, colours,
    attributes and spatial relations, all derived from what the scene actually contains."""
    faces = [a for a in annotations if a["category"] == "face"]
    objects = [a for a in annotations if a["category"] != "face"]
    setting = rng.choice(
        ["outdoors", "outside", "in a park"]
        if outdoor
        else ["in a room", "indoors", "inside a room"]
    )
    place = "an outdoor scene" if outdoor else "a room"
    object_list = _join(_object_phrases(objects))
    n_faces = len(faces)

    # 1. counts first
    people = _count(n_faces, "person")
    if objects:
        first = rng.choice(
            [f"{people} and {object_list} {setting}", f"{object_list} and {people} {setting}"]
        )
    else:
        first = rng.choice([f"{people} {setting}", f"{people} {setting}, with no objects around"])
    # 2. a photo of faces
    lead = rng.choice(["a photo of", "a picture showing", "an image with"])
    if objects:
        near = rng.choice(["next to", "near", "together with"])
        second = f"{lead} {_count(n_faces, 'face')} {near} {object_list}"
    else:
        second = f"{lead} {_count(n_faces, 'face')} {setting}"
    # 3. attributes of the people (articles, no cardinals)
    if faces:
        third = f"{_join([_person_phrase(f, rng) for f in faces])} {setting}"
    elif objects:
        third = f"{object_list} {setting}, and nobody is there"
    else:
        third = rng.choice(
            [
                f"an empty {'place outdoors' if outdoor else 'room'}",
                f"nothing but {place} without anyone in it",
            ]
        )
    # 4. a spatial relation
    items = faces + objects
    if len(items) >= 2:
        a, b = rng.sample(items, 2)
        fourth = f"{_item_phrase(a, rng)} {_relation(a, b)} {_item_phrase(b, rng)}"
    elif len(items) == 1:
        item = items[0]
        centre = (item["box"][0] + item["box"][2]) / 2
        position = (
            "on the left"
            if centre < size / 3
            else "on the right"
            if centre > 2 * size / 3
            else "in the middle"
        )
        fourth = f"{_item_phrase(item, rng)} {position} of the picture"
    else:
        fourth = f"there is nothing in {place}"
    # 5. there is / there are
    verb = "is" if n_faces == 1 else "are"
    if objects:
        fifth = (
            f"there {verb} {people} and {_count(len(objects), 'object')} {setting}: {object_list}"
        )
    else:
        fifth = f"there {verb} {people} and no objects {setting}"
    captions = [first, second, third, fourth, fifth]
    return [c[0].upper() + c[1:] + "." for c in captions[:count]]
