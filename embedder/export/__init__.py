"""Build-time exporters (torch, timm, open_clip, onnx). Never imported by the serving path."""
