"""Compile a trained model to ONNX, faithfully, or say which step cannot be compiled."""

from .convert import OPSET, Compiled, ConversionError, steps, to_onnx

__all__ = ["OPSET", "Compiled", "ConversionError", "steps", "to_onnx"]
