import torch
from PIL import Image

from dcgan.imaging import grid_image, make_grid, resize_uint8, save_gif, to_uint8


def test_to_uint8_range():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0])
    assert to_uint8(x).tolist() == [0, 0, 128, 255, 255]


def test_grid_layout_and_placement():
    imgs = torch.zeros(5, 3, 4, 4, dtype=torch.uint8)
    imgs[4] = 255
    grid = make_grid(imgs, nrow=3, padding=1)
    assert grid.shape == (1 + 2 * 5, 1 + 3 * 5, 3)
    # Image 4 sits in row 1, column 1.
    assert (grid[6:10, 6:10] == 255).all() and grid[1:5, 1:5].max() == 0
    assert grid_image(torch.zeros(64, 1, 8, 8)).mode == "L"


def test_resize_and_gif(tmp_path):
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    assert resize_uint8(x, 32).shape == (3, 1, 32, 32)
    frames = [Image.new("L", (10, 10), c) for c in (0, 128, 255)]
    path = save_gif(frames, tmp_path / "a.gif")
    with Image.open(path) as im:
        assert im.n_frames == 3
