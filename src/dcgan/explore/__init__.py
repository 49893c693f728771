"""The paper's uses of a trained pair, as pure functions over tensors (section 6 of the paper and after):

* `latent`: sample sheets, walks (linear and spherical), vector arithmetic, nearest neighbours,
  principal directions, and inversion (from `inversion`);
* `inversion`: the z (and class) whose image is closest to a target;
* `probe`: D's features with a linear SVM (section 5.1);
* `filters`: what D's and G's filters respond to (section 6.3).

The commands that save their pictures are in `dcgan.cli.explore` and `dcgan.cli.discriminator`.
"""
