"""Regenerate the bundled sample photos: `.venv/bin/python tests/data/make_sample.py`.

sample-shirt.jpg is the `make demo` input: a button-down shirt on a softly lit studio sweep.
sample-outfit.jpg is a flat-lay of three separate garments on one background. sample-person.jpg
is a standing figure for try-on (`closet tryon`). All come from tests/synthetic.py with fixed
seeds, so the same code gives the same pixels.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 1600, 1200
QUALITY = 90


def main() -> None:
    # Run as a script from anywhere: the repository root holds the `tests` package.
    sys.path.insert(0, str(HERE.parents[1]))
    from tests.synthetic import make_outfit, make_scene, person_photo

    shirt, _ = make_scene(
        seed=20240611,
        width=WIDTH,
        height=HEIGHT,
        kind="shirt",
        background="soft",
        garment_colour=(92, 140, 196),
        background_colour=(238, 237, 233),
        pattern="solid",
        fill=0.78,
        noise=1.2,
    )
    shirt.save(HERE / "sample-shirt.jpg", quality=QUALITY, optimize=True)

    outfit, _ = make_outfit(
        seed=20240612,
        width=WIDTH,
        height=HEIGHT,
        kinds=("tshirt", "trousers", "cap"),
        background="vignette",
        background_colour=(226, 218, 204),
        noise=1.2,
    )
    outfit.save(HERE / "sample-outfit.jpg", quality=QUALITY, optimize=True)

    person_photo(768, 1152, seed=20240613).save(
        HERE / "sample-person.jpg", quality=QUALITY, optimize=True
    )


if __name__ == "__main__":
    main()
