"""LSRL — the Linear State Recurrent Language (Petrov et al., NeurIPS 2024) and its compiler to rnnattn
models.

Pipeline (one stage per module, data flows one way): :mod:`.nodes` + :mod:`.sugar` (the language) ->
:mod:`.interpreter` (ground truth) -> :mod:`.compiler` (lower -> schedule -> assemble -> check) ->
:mod:`.modules` (batched torch export) -> :mod:`.convert` (Elman / GRU / LSTM / Hawk). Numeric modes
(``"float64"`` / ``"exact"``; sympy constants stay symbolic in exact mode) are always passed explicitly
(:mod:`.numeric`). Programs are files through :mod:`.serialize` (versioned JSON, loading never runs code); compiled
programs are checkpoints through :mod:`.saved` (``rnnattn lsrl compile`` / ``run``); :mod:`.noise` measures the
output error under weight noise (paper Fig. 4).

Example:
    >>> from rnnattn.lsrl import compile, token_program, token_prompt, token_answer
    >>> cp = compile(token_program(3, "multiplicative"), mode="exact")
    >>> token_answer(cp.run(token_prompt([1, 2, 3], {(1, 2, 3): (7, 8, 9), (3, 2, 1): (4, 5, 6)})), 3)
    [7, 8, 9]
"""

from . import programs
from .compiler import CompiledProgram, LSRLCompileCheckError, compile
from .convert import ConversionError, convert, to_elman, to_gru, to_hawk, to_lstm, to_mamba
from .display import draw_compiled, draw_program, stage_weights
from .interpreter import Interpreter, run
from .modules import (
    CompiledLSRL,
    CompiledLSRLConfig,
    LSRLPrecisionError,
    float32_issue,
    linear_scan,
    perturb_nonzeros,
)
from .nodes import Concat, Input, Linear, LinState, Multi, Multiplicative, ReLU, Slice, Variable
from .numeric import Mode, SparseMatrix
from .program import LSRLValidationError, Program
from .programs import (
    continuous_error_bound,
    continuous_program,
    continuous_prompt,
    random_token_map,
    token_answer,
    token_program,
    token_prompt,
)
from .serialize import ProgramFormatError, load_program, save_program
from .sugar import (
    IFELSE_VARIANTS,
    broadcast,
    counter,
    f_and,
    f_bump,
    f_constant,
    f_eq,
    f_ifelse,
    f_ifelse_mul,
    f_ifelse_optimized,
    f_ifelse_step,
    f_ifeq,
    f_larger,
    f_modulo_counter,
    f_neq,
    f_not,
    f_or,
    f_relu_identity,
    f_smaller,
    f_step,
    f_sum,
    ifelse,
)

__all__ = [
    "Variable",
    "Input",
    "Linear",
    "Slice",
    "Concat",
    "ReLU",
    "LinState",
    "Multiplicative",
    "Multi",
    "Mode",
    "SparseMatrix",
    "Program",
    "LSRLValidationError",
    "ProgramFormatError",
    "load_program",
    "save_program",
    "Interpreter",
    "run",
    "IFELSE_VARIANTS",
    "broadcast",
    "counter",
    "f_and",
    "f_bump",
    "f_constant",
    "f_eq",
    "f_ifelse",
    "f_ifelse_mul",
    "f_ifelse_optimized",
    "f_ifelse_step",
    "f_ifeq",
    "f_larger",
    "f_modulo_counter",
    "f_neq",
    "f_not",
    "f_or",
    "f_relu_identity",
    "f_smaller",
    "f_step",
    "f_sum",
    "ifelse",
    "compile",
    "CompiledProgram",
    "LSRLCompileCheckError",
    "CompiledLSRL",
    "CompiledLSRLConfig",
    "LSRLPrecisionError",
    "float32_issue",
    "linear_scan",
    "perturb_nonzeros",
    "ConversionError",
    "convert",
    "to_elman",
    "to_gru",
    "to_hawk",
    "to_lstm",
    "to_mamba",
    "draw_compiled",
    "draw_program",
    "stage_weights",
    "programs",
    "continuous_program",
    "continuous_prompt",
    "continuous_error_bound",
    "token_program",
    "token_prompt",
    "token_answer",
    "random_token_map",
]
