#!/usr/bin/env python3
"""Write scikit-image's sample photographs as PNGs for `cxr-edge view-check --extra`.

Usage: scripts/photographs.py OUT_DIR   (needs `pip install scikit-image`)

Two folders (the folder name is the kind `view-check` reports):
  OUT_DIR/photograph_grey    every sample as 8-bit grey (what the pixel check must refuse)
  OUT_DIR/photograph_colour  the colour ones as RGB (the decoder's colour check refuses them)
"""
import os
import sys

import numpy as np
import skimage.data as data
import skimage.io as io
from skimage.color import rgb2gray

NAMES = ["astronaut", "camera", "coffee", "chelsea", "rocket", "brick", "grass", "gravel",
         "moon", "page", "text", "horse", "hubble_deep_field", "immunohistochemistry",
         "retina", "logo", "clock", "coins", "cat"]


def main(out):
    grey_dir = os.path.join(out, "photograph_grey")
    colour_dir = os.path.join(out, "photograph_colour")
    os.makedirs(grey_dir, exist_ok=True)
    os.makedirs(colour_dir, exist_ok=True)
    for name in NAMES:
        im = getattr(data, name)()
        if im.dtype == bool:
            im = (im * 255).astype(np.uint8)
        if im.ndim == 3:
            im = im[:, :, :3]
            io.imsave(os.path.join(colour_dir, name + ".png"), im, check_contrast=False)
            im = (rgb2gray(im) * 255).astype(np.uint8)
        io.imsave(os.path.join(grey_dir, name + ".png"), im, check_contrast=False)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
