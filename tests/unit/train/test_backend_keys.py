"""hardware.dtype: the short names (fp32, bf16) and torch's (float32, bfloat16) are one setting."""

import pytest

from align_lab.train.backend import Backend


@pytest.mark.parametrize(
    "given,kept", [("fp32", "fp32"), ("float32", "fp32"), ("bf16", "bf16"), ("bfloat16", "bf16")]
)
def test_hardware_dtype_takes_torchs_names_too(given, kept):
    assert Backend(dtype=given).dtype == kept


def test_an_unknown_hardware_dtype_is_refused_naming_what_is_allowed():
    with pytest.raises(ValueError, match=r"^dtype=fp8: must be one of fp32, bf16$"):
        Backend(dtype="fp8")
