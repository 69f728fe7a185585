"""A random-weight TinyLlama-1.1B-shaped Llama in fp16 (the study's tinyllama shape), saved for the drivers."""
import sys
import torch
from transformers import LlamaConfig, LlamaForCausalLM

config = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                     num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048)
torch.manual_seed(0)
with torch.device("cuda"):
    model = LlamaForCausalLM(config).to(torch.float16)
model.save_pretrained(sys.argv[1])
print("model saved")
