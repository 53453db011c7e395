"""A synthetic multimodal science benchmark in ScienceQA's own layout, for the offline demo.

`generate_synthetic(out_dir)` writes `problems.json`, `pid_splits.json`, `captions.json` and
`images/<qid>/image.png`, with all 14 problem fields, so `mmcot prepare` reads it like the real benchmark.

Design (measured constraints in docs/DEMO.md): a tiny T5 trained from scratch for a few minutes on raw-pixel
patch features learns visual facts that *colour* encodes, and maps an answer word to an option letter only when
options come in a fixed order per question type. So:
- Image questions (IMG, no hint) ask about one colour-coded fact: the colour of one big shape, the lit lamp of a
  traffic light, the colour of litmus paper, or which poles of two large bar magnets face each other (poles
  coloured by polarity, N red and S blue, and lettered). The question text is the same whatever the image shows
  and every option is equally likely, so a model that ignores the image stays at chance.
- Hint questions (TXT, no image) state the fact in the hint; knowledge questions (NO) have neither and are
  answerable from what the training set teaches.
- The lecture states the general knowledge; the solution states the visual fact and the reasoning, in a few
  templated phrasings tied to the question's wording, so a text-only model gets the phrasing right but must
  guess ("hallucinate") the fact in its rationale.
- Captions are deliberately empty: a caption would leak the visual fact into the text and let the text-only
  baseline cheat.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mmcot_cli.errors import UnknownNameError, UsageError
from mmcot_cli.io import atomic_dir, write_json
from mmcot_cli.output_guard import has_content

IMAGE_SIZE = 224  # the size the patch backbone cuts into a 7×7 grid of 32-px cells
SYNTHETIC_SOURCE = "mmcot synthetic benchmark"
# The label the demo's report.html carries under its title: these scores are not ScienceQA scores.
REPORT_NOTE = ("Synthetic benchmark (mmcot demo): generated problems in ScienceQA's file layout, not ScienceQA. "
               "The scores here are not comparable with published ScienceQA results, which are left out.")

# (name, RGB) — saturated so one linear layer over raw pixels tells them apart.
COLOURS = {"red": (220, 40, 40), "yellow": (240, 200, 30), "green": (40, 170, 60), "blue": (40, 80, 220)}
POLE_COLOURS = {"north": COLOURS["red"], "south": COLOURS["blue"]}
NAMES = ("Maya", "Leo", "Ana", "Omar", "Ella", "Sam", "Kira", "Ben", "Lucy", "Ravi", "Nora", "Tom")
OBJECTS = ("kite", "ball", "hat", "bike", "cup", "scarf", "umbrella", "backpack")
COLOUR_CHOICES = ["red", "yellow", "green", "blue"]
TRAFFIC_CHOICES = ["stop", "slow down", "go"]
TRAFFIC_MEANING = {"red": "stop", "yellow": "slow down", "green": "go"}
LITMUS_CHOICES = ["an acid", "a base"]
MAGNET_CHOICES = ["attract", "repel"]


@dataclass
class _Problem:
    task: str  # which generator made it (recorded in the summary, not in problems.json)
    fields: dict
    draw: Callable[[], "object"] | None  # returns a PIL image, or None for text-only problems


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int = 18) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


def _background(rng: random.Random) -> tuple[int, int, int]:
    v = rng.randint(235, 255)
    return (v, v, rng.randint(230, 255))


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow ≥ 10.1: a bundled scalable font, same everywhere
    except TypeError:
        return ImageFont.load_default()


def _canvas(rng: random.Random):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), _background(rng))
    return img, ImageDraw.Draw(img)


def _fields(*, question, choices, answer, hint, image, subject, topic, category, skill, grade, lecture, solution,
            task="closed choice") -> dict:
    return {"question": question, "choices": list(choices), "answer": answer, "hint": hint,
            "image": "image.png" if image else None, "task": task, "grade": grade, "subject": subject,
            "topic": topic, "category": category, "skill": skill, "lecture": lecture, "solution": solution}


# ---------------------------------------------------------------------------------------------- image tasks

_MAGNET_LECTURES = (
    "Magnets can pull or push on each other without touching. A pull is called attraction, and a push is called "
    "repulsion.\nEvery magnet has a north pole and a south pole. In these pictures, north poles are red and marked "
    "N, and south poles are blue and marked S.\nDifferent poles attract each other. The same poles repel each other.",
    "Every magnet has two ends called poles: a north pole and a south pole. In these pictures, the north pole is "
    "red and marked N, and the south pole is blue and marked S.\nWhen different poles face each other, the magnets "
    "attract. When the same poles face each other, the magnets repel.",
)


def _magnets(rng: random.Random) -> _Problem:
    left = rng.choice(("NS", "SN"))  # pole letters from left to right
    right = rng.choice(("NS", "SN"))
    pole = {"N": "north", "S": "south"}
    p1, p2 = pole[left[1]], pole[right[0]]
    same = p1 == p2
    answer = "repel" if same else "attract"
    rule = ("the same poles repel" if same else "different poles attract")
    # The phrasing follows the question's wording (visible to any model); only the facts need the image.
    variant = rng.randrange(3)
    question = ("Will these magnets attract or repel each other?", "Look at the picture. Will these magnets "
                "attract or repel?", "Do these two magnets attract or repel each other?")[variant]
    templates = (
        f"Will these magnets attract or repel? Look at the poles that are closest to each other.\nThe {p1} pole of "
        f"the left magnet faces the {p2} pole of the right magnet. {rule.capitalize()}. So, these magnets will "
        f"{answer} each other.",
        f"To find out, look at which poles face each other. The left magnet's {p1} pole is closest to the right "
        f"magnet's {p2} pole.\n{rule.capitalize()}, so the magnets will {answer} each other.",
        f"The {p1} pole of one magnet is next to the {p2} pole of the other magnet. {rule.capitalize()}. So, these "
        f"magnets will {answer} each other.",
    )

    def draw():
        img, d = _canvas(rng)
        top = 112 - 44 + rng.randint(-10, 10)
        height = 88
        gap_left, gap_right = 106 + rng.randint(-2, 2), 118 + rng.randint(-2, 2)
        x0, x3 = rng.randint(6, 20), rng.randint(204, 218)
        font = _font(34)
        for (a, b), letters in (((x0, gap_left), left), ((gap_right, x3), right)):
            mid = (a + b) // 2
            for (u, v), letter in (((a, mid), letters[0]), ((mid, b), letters[1])):
                d.rectangle((u, top, v, top + height), fill=_jitter(POLE_COLOURS[pole[letter]], rng, 12))
                d.text(((u + v) // 2, top + height // 2), letter, fill=(255, 255, 255), font=font, anchor="mm")
            d.rectangle((a, top, b, top + height), outline=(30, 30, 30), width=2)
        return img

    return _Problem("magnets", _fields(
        question=question, choices=MAGNET_CHOICES,
        answer=MAGNET_CHOICES.index(answer), hint="", image=True, subject="natural science", topic="physics",
        category="Magnets", skill="Predict if magnets will attract or repel", grade=rng.choice(("grade3", "grade4",
        "grade7", "grade8")), lecture=rng.choice(_MAGNET_LECTURES), solution=templates[variant]), draw)


_COLOUR_LECTURES = (
    "Colour words describe how things look. Red, yellow, green and blue are colour words.",
    "A colour word tells what colour something is. Red, yellow, green and blue are all colour words.",
)


def _shape_colour(rng: random.Random) -> _Problem:
    colour = rng.choice(COLOUR_CHOICES)
    variant = rng.randrange(3)
    question = ("What colour is the shape?", "Which colour word describes the shape?",
                "Which word tells the colour of the shape?")[variant]
    templates = (
        f"Look at the picture. The shape is {colour}. So, the shape's colour is {colour}.",
        f"The shape in the picture is {colour}. So, the colour word {colour} describes the shape.",
        f"Look closely at the shape. Its colour is {colour}, so the word {colour} tells its colour.",
    )

    def draw():
        img, d = _canvas(rng)
        size = rng.randint(130, 170)
        cx, cy = 112 + rng.randint(-16, 16), 112 + rng.randint(-16, 16)
        box = (cx - size // 2, cy - size // 2, cx + size // 2, cy + size // 2)
        fill = _jitter(COLOURS[colour], rng)
        kind = rng.choice(("circle", "square", "triangle", "diamond"))
        if kind == "circle":
            d.ellipse(box, fill=fill)
        elif kind == "square":
            d.rectangle(box, fill=fill)
        elif kind == "triangle":
            d.polygon([(cx, box[1]), (box[2], box[3]), (box[0], box[3])], fill=fill)
        else:
            d.polygon([(cx, box[1]), (box[2], cy), (cx, box[3]), (box[0], cy)], fill=fill)
        return img

    return _Problem("shape_colour", _fields(
        question=question, choices=COLOUR_CHOICES, answer=COLOUR_CHOICES.index(colour), hint="", image=True,
        subject="language science", topic="vocabulary", category="Colour words", skill="Choose the colour word",
        grade=rng.choice(("grade1", "grade2")), lecture=rng.choice(_COLOUR_LECTURES),
        solution=templates[variant]), draw)


_TRAFFIC_LECTURES = (
    "Traffic lights help people share the road safely. A red light means stop. A yellow light means slow down "
    "and get ready to stop. A green light means go.",
    "Drivers follow traffic lights. Red means stop, yellow means slow down, and green means go.",
)


def _traffic_light(rng: random.Random) -> _Problem:
    colour = rng.choice(("red", "yellow", "green"))
    answer = TRAFFIC_MEANING[colour]
    variant = rng.randrange(2)
    question = ("What should a driver do when the traffic light looks like this?",
                "Look at the traffic light. What should a driver do?")[variant]
    templates = (
        f"Look at the traffic light. The light that is on is {colour}. A {colour} light means {answer}. So, the "
        f"driver should {answer}.",
        f"The {colour} light is lit. A {colour} light tells drivers to {answer}, so the driver should {answer}.",
    )

    def draw():
        img, d = _canvas(rng)
        x = 112 + rng.randint(-12, 12)
        d.rounded_rectangle((x - 46, 6, x + 46, 218), radius=16, fill=(45, 45, 45))
        for i, lamp in enumerate(("red", "yellow", "green")):
            cy = 44 + 68 * i
            fill = _jitter(COLOURS[lamp], rng, 10) if lamp == colour else (85, 85, 85)
            d.ellipse((x - 32, cy - 32, x + 32, cy + 32), fill=fill)
        return img

    return _Problem("traffic_light", _fields(
        question=question, choices=TRAFFIC_CHOICES,
        answer=TRAFFIC_CHOICES.index(answer), hint="", image=True, subject="social science", topic="civics",
        category="Road safety", skill="Read a traffic light", grade=rng.choice(("grade2", "grade3")),
        lecture=rng.choice(_TRAFFIC_LECTURES), solution=templates[variant]), draw)


_LITMUS_LECTURES = (
    "Litmus paper shows whether a liquid is an acid or a base. Litmus paper turns red in an acid and blue in a base.",
    "Scientists use litmus paper to test liquids. In an acid, litmus paper turns red. In a base, it turns blue.",
)


def _litmus(rng: random.Random) -> _Problem:
    colour = rng.choice(("red", "blue"))
    answer = "an acid" if colour == "red" else "a base"
    variant = rng.randrange(2)
    question = ("This litmus paper was dipped in a liquid. Is the liquid an acid or a base?",
                "Look at the litmus paper. Was it dipped in an acid or a base?")[variant]
    templates = (
        f"Look at the litmus paper. It is {colour}. Litmus paper turns {colour} in {answer}. So, the liquid is "
        f"{answer}.",
        f"The litmus paper in the picture turned {colour}. A {colour} colour means the liquid is {answer}.",
    )

    def draw():
        img, d = _canvas(rng)
        d.rectangle((18, 96, 98, 206), outline=(90, 90, 90), width=4)  # beaker
        d.rectangle((22, 140, 94, 202), fill=(205, 225, 240))  # clear liquid: the paper carries the fact
        x = 124 + rng.randint(-6, 6)
        d.rectangle((x, 14, x + 80, 210), fill=_jitter(COLOURS[colour], rng, 12))
        return img

    return _Problem("litmus", _fields(
        question=question, choices=LITMUS_CHOICES, answer=LITMUS_CHOICES.index(answer), hint="", image=True,
        subject="natural science", topic="chemistry", category="Acids and bases", skill="Read a litmus test",
        grade=rng.choice(("grade7", "grade8", "grade9")), lecture=rng.choice(_LITMUS_LECTURES),
        solution=templates[variant]), draw)


# ---------------------------------------------------------------------------------------------- hint tasks


def _hint_colour(rng: random.Random) -> _Problem:
    colour, name, obj = rng.choice(COLOUR_CHOICES), rng.choice(NAMES), rng.choice(OBJECTS)
    hint = rng.choice((f"{name} has a {colour} {obj}.", f"{name}'s {obj} is {colour}."))
    return _Problem("hint_colour", _fields(
        question=f"What colour is {name}'s {obj}?", choices=COLOUR_CHOICES, answer=COLOUR_CHOICES.index(colour),
        hint=hint, image=False, subject="language science", topic="reading-comprehension",
        category="Reading for details", skill="Find a detail in a text", grade=rng.choice(("grade1", "grade2")),
        lecture=rng.choice(_COLOUR_LECTURES),
        solution=f"Read the text. It says that {name}'s {obj} is {colour}. So, the answer is {colour}."), None)


def _hint_traffic(rng: random.Random) -> _Problem:
    colour, name = rng.choice(("red", "yellow", "green")), rng.choice(NAMES)
    answer = TRAFFIC_MEANING[colour]
    return _Problem("hint_traffic", _fields(
        question=f"What should {name} do?", choices=TRAFFIC_CHOICES, answer=TRAFFIC_CHOICES.index(answer),
        hint=f"{name} is driving a car. The traffic light ahead turns {colour}.", image=False,
        subject="social science", topic="civics", category="Road safety", skill="Read a traffic light",
        grade=rng.choice(("grade2", "grade3")), lecture=rng.choice(_TRAFFIC_LECTURES),
        solution=f"The text says the light is {colour}. A {colour} light means {answer}. So, {name} should "
                 f"{answer}."), None)


def _hint_litmus(rng: random.Random) -> _Problem:
    colour, name = rng.choice(("red", "blue")), rng.choice(NAMES)
    answer = "an acid" if colour == "red" else "a base"
    return _Problem("hint_litmus", _fields(
        question="Is the liquid an acid or a base?", choices=LITMUS_CHOICES, answer=LITMUS_CHOICES.index(answer),
        hint=f"{name} dipped a strip of litmus paper into a liquid. The paper turned {colour}.", image=False,
        subject="natural science", topic="chemistry", category="Acids and bases", skill="Read a litmus test",
        grade=rng.choice(("grade7", "grade8", "grade9")), lecture=rng.choice(_LITMUS_LECTURES),
        solution=f"The text says the litmus paper turned {colour}. Litmus paper turns {colour} in {answer}. So, "
                 f"the liquid is {answer}."), None)


# ------------------------------------------------------------------------------------- knowledge (no context)

# (question, choices in a fixed order, answer, subject, topic, category, grade, lecture-giving task)
_FACTS = (
    ("What do two north poles do when they face each other?", MAGNET_CHOICES, "repel", "natural science",
     "physics", "Magnets", "grade3", _MAGNET_LECTURES),
    ("What do a north pole and a south pole do when they face each other?", MAGNET_CHOICES, "attract",
     "natural science", "physics", "Magnets", "grade3", _MAGNET_LECTURES),
    ("What do two south poles do when they face each other?", MAGNET_CHOICES, "repel", "natural science",
     "physics", "Magnets", "grade4", _MAGNET_LECTURES),
    ("What does a red traffic light tell a driver to do?", TRAFFIC_CHOICES, "stop", "social science", "civics",
     "Road safety", "grade2", _TRAFFIC_LECTURES),
    ("What does a yellow traffic light tell a driver to do?", TRAFFIC_CHOICES, "slow down", "social science",
     "civics", "Road safety", "grade2", _TRAFFIC_LECTURES),
    ("What does a green traffic light tell a driver to do?", TRAFFIC_CHOICES, "go", "social science", "civics",
     "Road safety", "grade2", _TRAFFIC_LECTURES),
    ("Litmus paper turned red. Was the liquid an acid or a base?", LITMUS_CHOICES, "an acid", "natural science",
     "chemistry", "Acids and bases", "grade8", _LITMUS_LECTURES),
    ("Litmus paper turned blue. Was the liquid an acid or a base?", LITMUS_CHOICES, "a base", "natural science",
     "chemistry", "Acids and bases", "grade8", _LITMUS_LECTURES),
    ("Which colour is the sky on a clear day?", COLOUR_CHOICES, "blue", "language science", "vocabulary",
     "Colour words", "grade1", _COLOUR_LECTURES),
    ("Which colour is fresh grass?", COLOUR_CHOICES, "green", "language science", "vocabulary", "Colour words",
     "grade1", _COLOUR_LECTURES),
    ("Which colour is a ripe banana?", COLOUR_CHOICES, "yellow", "language science", "vocabulary", "Colour words",
     "grade1", _COLOUR_LECTURES),
    ("Which colour is a ripe strawberry?", COLOUR_CHOICES, "red", "language science", "vocabulary",
     "Colour words", "grade1", _COLOUR_LECTURES),
)


def _knowledge(rng: random.Random) -> _Problem:
    question, choices, answer, subject, topic, category, grade, lectures = rng.choice(_FACTS)
    return _Problem("knowledge", _fields(
        question=question, choices=choices, answer=list(choices).index(answer), hint="", image=False,
        subject=subject, topic=topic, category=category, skill="Recall a fact", grade=grade,
        lecture=rng.choice(lectures), solution=f"Use what you know. The answer is {answer}."), None)


# Share of each task in the benchmark: 60% image questions, 30% hint questions, 10% knowledge questions.
TASK_WEIGHTS: dict[str, tuple[Callable[[random.Random], _Problem], float]] = {
    "magnets": (_magnets, 0.15),
    "shape_colour": (_shape_colour, 0.15),
    "traffic_light": (_traffic_light, 0.15),
    "litmus": (_litmus, 0.15),
    "hint_colour": (_hint_colour, 0.15),  # copying one of four colours from the hint needs the most examples
    "hint_traffic": (_hint_traffic, 0.075),
    "hint_litmus": (_hint_litmus, 0.075),
    "knowledge": (_knowledge, 0.10),
}


def _split_sizes(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    n_val = max(1, round(n * fractions[1]))
    n_test = max(1, round(n * fractions[2]))
    return n - n_val - n_test, n_val, n_test


def generate_synthetic(
    out_dir: str | os.PathLike,
    n_problems: int = 3000,
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    tasks: tuple[str, ...] | None = None,
    overwrite: bool = True,
) -> dict:
    """Write a synthetic benchmark in the ScienceQA layout into `out_dir`; return a summary dict.

    Deterministic for a given (n_problems, seed, split_fractions, tasks). The folder is built beside `out_dir`
    and renamed into place, so an interrupted run leaves no half-written benchmark. `tasks` restricts the mix to
    some of TASK_WEIGHTS (weights renormalised).
    """
    start = time.perf_counter()
    if n_problems < 3:
        raise UsageError(f"n_problems must be at least 3 (one per split), got {n_problems}")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or sum(split_fractions) <= 0:
        raise UsageError(f"split_fractions must be three non-negative numbers, got {split_fractions}")
    total = sum(split_fractions)
    split_fractions = tuple(f / total for f in split_fractions)  # type: ignore[assignment]
    chosen = tuple(TASK_WEIGHTS) if tasks is None else tuple(tasks)
    unknown = [t for t in chosen if t not in TASK_WEIGHTS]
    if unknown or not chosen:
        raise UnknownNameError("synthetic task", (unknown or ["(none)"])[0], list(TASK_WEIGHTS))

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise UsageError(f"{out}: already exists (pass overwrite=True to replace it)")
    if out.exists() and not (out / "problems.json").is_file() and has_content(out):
        raise UsageError(f"{out}: exists and is not a benchmark folder; refusing to replace it")

    rng = random.Random(seed)
    makers = [TASK_WEIGHTS[t][0] for t in chosen]
    weights = [TASK_WEIGHTS[t][1] for t in chosen]
    n_train, n_val, n_test = _split_sizes(n_problems, split_fractions)
    split_of = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    rng.shuffle(split_of)

    with atomic_dir(out) as tmp:  # a write fault: one line naming `out`, no partial benchmark
        problems: dict[str, dict] = {}
        splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        by_task: dict[str, int] = {t: 0 for t in chosen}
        n_images = 0
        for i in range(n_problems):
            qid = str(i + 1)  # ScienceQA qids are "1".."N"
            problem = rng.choices(makers, weights)[0](rng)
            problem.fields["split"] = split_of[i]
            problems[qid] = problem.fields
            splits[split_of[i]].append(qid)
            by_task[problem.task] += 1
            if problem.draw is not None:
                (tmp / "images" / qid).mkdir(parents=True)
                problem.draw().save(tmp / "images" / qid / "image.png", optimize=False)
                n_images += 1
        pid_splits = dict(splits)
        pid_splits["trainval"] = splits["train"] + splits["val"]
        for name in ("train", "val", "test"):  # the benchmark's mini splits: the first tenth of each
            pid_splits[f"mini{name}"] = splits[name][: max(1, len(splits[name]) // 10)]
        write_json(tmp / "problems.json", problems)
        write_json(tmp / "pid_splits.json", pid_splits)
        # Empty on purpose: a caption would tell the text-only baseline what the image shows.
        write_json(tmp / "captions.json", {"model": "none (synthetic benchmark: captions withheld)",
                                           "captions": {}})

    return {
        "path": str(out.resolve()), "source": SYNTHETIC_SOURCE, "seed": seed, "count": n_problems,
        "images": n_images, "splits": {k: len(v) for k, v in splits.items()}, "tasks": by_task,
        "seconds": round(time.perf_counter() - start, 3),
    }
