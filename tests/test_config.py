"""Parameters: the shipped original-format config file, overrides, and bad values."""

from __future__ import annotations

import pytest

from rtpose.config import GroupingParams, InferenceParams, load_config
from rtpose.errors import RtposeError

CUSTOM = """
[param]
modelID = 1
scale_search = 1.0, 0.5  # inline comment
thre1 = 0.2
thre2 = 0.1
min_num = 3
mid_num = 12
something_new = whatever

[models]
## don't edit this part

[[1]]
boxsize = 320
padValue = 0
stride = 8
"""


def test_shipped_config_holds_the_cmu_defaults(repo_root):
    assert load_config(repo_root / "config") == (InferenceParams(stride=8), GroupingParams())
    assert InferenceParams().scales == (0.5, 1.0, 1.5, 2.0)
    assert (GroupingParams().thre1, GroupingParams().thre2) == (0.1, 0.05)


def test_values_are_read_and_unknown_keys_ignored(tmp_path):
    path = tmp_path / "config"
    path.write_text(CUSTOM)
    inference, grouping = load_config(path)
    assert inference == InferenceParams(boxsize=320, pad_value=0, scales=(1.0, 0.5), stride=8)
    assert grouping == GroupingParams(thre1=0.2, thre2=0.1, mid_num=12, min_parts=3)


def test_missing_keys_keep_defaults(tmp_path):
    path = tmp_path / "config"
    path.write_text("[param]\nthre1 = 0.3\n")
    inference, grouping = load_config(path)
    assert inference == InferenceParams()
    assert grouping == GroupingParams(thre1=0.3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[param]\nthre1 = high\n", "thre1"),
        ("[param]\nscale_search = 1, , 2\n", "scale_search"),
        ("[param]\nscale_search = 0, 1\n", "scales must be positive"),
        ("[models]\nboxsize = -3\n", "boxsize must be positive"),
        ("[param]\nmid_num = 1\n", "mid_num"),
        ("thre1 = 0.1\n", "malformed"),
    ],
)
def test_bad_values_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(RtposeError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(RtposeError, match="cannot read config file"):
        load_config(tmp_path / "nope")


def test_params_validate_themselves():
    with pytest.raises(RtposeError, match="pad_value"):
        InferenceParams(pad_value=300)
    with pytest.raises(RtposeError, match="scales must not be empty"):
        InferenceParams(scales=())
