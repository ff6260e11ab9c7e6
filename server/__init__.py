"""The embedded TGI-compatible server (`inhouse serve`): one base model, many LoRA adapters, batched decoding."""
