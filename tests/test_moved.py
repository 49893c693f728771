"""Import paths moved after 0.3.0 still serve the same objects for one version, each use saying where it went."""

import importlib
from pathlib import Path

import pytest

MOVED = [  # (old module, new module, a name it holds)
    ("dcgan.conditioning", "dcgan.models.conditioning", "class_grid"),
    ("dcgan.latent", "dcgan.explore.latent", "interpolate"),
    ("dcgan.probe", "dcgan.explore.probe", "run_probe"),
    ("dcgan.filters", "dcgan.explore.filters", "discriminator_filters"),
    ("dcgan.imagefiles", "dcgan.data.imagefiles", "decode_image"),
    ("dcgan.lsun", "dcgan.data.lsun", "open_lmdb"),
    ("dcgan.datacheck", "dcgan.data.check", "check_dataset"),
    ("dcgan.download", "dcgan.data.download", "download_dataset"),
    ("dcgan.shards", "dcgan.data.shards", "open_shards"),
    ("dcgan.shards", "dcgan.data.shard_writer", "write_shards"),  # a module that was split: each name from its new home
    ("dcgan.health", "dcgan.training.health", "HealthMonitor"),
    ("dcgan.distributed", "dcgan.training.distributed", "DistInfo"),
    ("dcgan.recipes", "dcgan.training.recipes", "RECIPES"),
    ("dcgan.configfile", "dcgan.training.configfile", "read_config_file"),
]


def test_the_latent_figures_moved_out_of_the_general_pictures():
    import dcgan.explore.figures
    import dcgan.figures

    assert dcgan.figures.labelled_grid  # the general pictures stay, with no warning
    with pytest.warns(DeprecationWarning, match=r"dcgan\.figures\.walk_figure moved to dcgan\.explore\.figures\.walk_figure"):
        assert dcgan.figures.walk_figure is dcgan.explore.figures.walk_figure


@pytest.mark.parametrize("old, new, name", MOVED, ids=[f"{m[0]}.{m[2]}" for m in MOVED])
def test_an_old_path_serves_the_new_objects_with_a_warning(old, new, name):
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new}\.{name}"):
        value = getattr(old_module, name)
    assert value is getattr(new_module, name)
    with pytest.warns(DeprecationWarning):  # the from-import form users wrote
        exec(f"from {old} import {name} as imported", namespace := {})
    assert namespace["imported"] is value
    with pytest.raises(AttributeError):  # an unknown name is still unknown
        getattr(old_module, "no_such_name")  # noqa: B009  (the attribute access is the test)


def test_the_explorer_classes_left_the_top_of_the_api():
    import dcgan
    import dcgan.server

    assert "Explorer" not in dcgan.__all__ and "ServeLimits" not in dcgan.__all__
    with pytest.warns(DeprecationWarning, match=r"dcgan\.Explorer moved to dcgan\.server\.Explorer"):
        assert dcgan.Explorer is dcgan.server.Explorer
    with pytest.raises(AttributeError):
        _ = dcgan.create_app  # only the two names that stood there forward


def test_the_old_paths_are_no_files_and_import_in_every_form():
    from dcgan._moved import MOVED_MODULES

    src = Path(importlib.import_module("dcgan").__file__).parent
    assert not [old for old in MOVED_MODULES if (src / f"{old.split('.')[1]}.py").exists()]  # the folder shows where things are
    with pytest.warns(DeprecationWarning, match=r"dcgan\.latent\.slerp moved to dcgan\.explore\.latent\.slerp"):
        exec("from dcgan import latent\nlatent.slerp", {})
    with pytest.warns(DeprecationWarning):
        exec("import dcgan.recipes\ndcgan.recipes.RECIPES", {})
