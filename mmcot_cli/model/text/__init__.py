"""The text-model seam: one interface for what training, generation, constrained answers, sampling, save/load and
import need from a text model, whatever its architecture.

Modules: base (TextModel, the interface, and text_model_for: a net → its implementation), t5 (T5TextModel and
T5's build/save/load), causal (CausalTextModel: decoder-only LMs), runs (build_model, save_run_model,
load_run_model: a run's model whatever its backbone).
"""
