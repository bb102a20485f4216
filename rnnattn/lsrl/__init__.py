"""LSRL — the Linear State Recurrent Language (Petrov et al., NeurIPS 2024) and its compiler to rnnattn models."""

from .nodes import Concat, Input, Linear, LinState, Multi, Multiplicative, ReLU, Slice, Variable
from .numeric import Mode, SparseMatrix
from .program import LSRLValidationError, Program
from .interpreter import Interpreter, run
from .sugar import (
    IFELSE_VARIANTS, broadcast, counter, f_and, f_bump, f_constant, f_eq, f_ifelse, f_ifelse_mul,
    f_ifelse_optimized, f_ifelse_step, f_ifeq, f_larger, f_modulo_counter, f_neq, f_not, f_or, f_relu_identity,
    f_smaller, f_step, f_sum, ifelse,
)
from .compiler import CompiledProgram, LSRLCompileCheckError, compile
from .modules import CompiledLSRL, CompiledLSRLConfig, linear_scan, perturb_nonzeros
from .convert import ConversionError, convert, to_elman, to_gru, to_hawk, to_lstm, to_mamba
from .display import draw_compiled, draw_program, stage_weights
from . import programs
from .programs import (
    continuous_error_bound, continuous_program, continuous_prompt, random_token_map, token_answer, token_program,
    token_prompt,
)

__all__ = [
    "Variable", "Input", "Linear", "Slice", "Concat", "ReLU", "LinState", "Multiplicative", "Multi",
    "Mode", "SparseMatrix", "Program", "LSRLValidationError", "Interpreter", "run",
    "IFELSE_VARIANTS", "broadcast", "counter", "f_and", "f_bump", "f_constant", "f_eq", "f_ifelse", "f_ifelse_mul",
    "f_ifelse_optimized", "f_ifelse_step", "f_ifeq", "f_larger", "f_modulo_counter", "f_neq", "f_not", "f_or",
    "f_relu_identity", "f_smaller", "f_step", "f_sum", "ifelse",
    "compile", "CompiledProgram", "LSRLCompileCheckError",
    "CompiledLSRL", "CompiledLSRLConfig", "linear_scan", "perturb_nonzeros",
    "ConversionError", "convert", "to_elman", "to_gru", "to_hawk", "to_lstm", "to_mamba",
    "draw_compiled", "draw_program", "stage_weights", "programs",
    "continuous_program", "continuous_prompt", "continuous_error_bound", "token_program", "token_prompt",
    "token_answer", "random_token_map",
]
