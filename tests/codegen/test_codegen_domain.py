"""The generated API enforces the int8 domain [-127, 127]: tt_train_step, tt_forward and tt_predict
reject an input of -128 with TT_ERR_ARG (and take no step); parameters outside it are refused when
the project is generated."""

import subprocess

import numpy as np
import pytest

from codegen_helpers import require, tiny_mlp
from tintin.codegen import CodegenError, generate_project

MAIN = r"""#include <stdio.h>
#include "tt_model.h"
int main(void)
{
    static int8_t x[TT_BATCH_SIZE * TT_INPUT_SIZE];
    static tt_label_t y[TT_BATCH_SIZE * TT_LABEL_SIZE];
    uint16_t cls;
    size_t i;
    uint32_t before;
    for (i = 0; i < TT_BATCH_SIZE * TT_INPUT_SIZE; ++i) {
        x[i] = (int8_t)(i % 255u) - 127;
    }
    tt_init(3u);
    before = tt_params_checksum();
    printf("ok %d\n", (int)tt_train_step(x, y));
    x[TT_INPUT_SIZE - 1] = -128;
    tt_init(3u);
    printf("train %d %d %u\n", (int)tt_train_step(x, y), tt_params_checksum() == before, (unsigned)tt_step_count());
    printf("forward %d\n", (int)tt_forward(x, NULL, NULL));
    printf("predict %d\n", (int)tt_predict(x, &cls));
    return 0;
}
"""


def test_minus_128_inputs_are_rejected(tmp_path):
    require("host")
    p = generate_project(tiny_mlp(), tmp_path / "p", example=False)
    (p.out_dir / "domain_main.c").write_text(MAIN)
    exe = tmp_path / "domain"
    subprocess.run(["gcc", "-std=c99", "-O0", "-Wall", "-Werror", f"-I{p.out_dir}", f"-I{p.out_dir / 'runtime'}",
                    str(p.out_dir / "domain_main.c"), *map(str, p.sources), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["ok 0", "train 3 1 0", "forward 3", "predict 3"]  # TT_ERR_ARG = 3, no step taken


def test_out_of_domain_parameters_are_refused(tmp_path):
    model = tiny_mlp()
    w = model.layers[0].weight
    assert w.value.m.dtype == np.int8
    m = np.array(w.value.m, copy=True)
    m.flat[0] = -128
    w.value = type(w.value)(m, w.value.scale)
    with pytest.raises(CodegenError, match=r"must lie in \[-127, 127\]"):
        generate_project(model, tmp_path / "p")
