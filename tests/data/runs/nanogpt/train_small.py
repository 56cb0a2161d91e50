# nanoGPT config: a small GPT trained at block_size 256
out_dir = 'out-small'
eval_interval = 100
log_interval = 10
batch_size = 32
block_size = 256
n_layer = 4
n_head = 4
n_embd = 256
dropout = 0.0
bias = False
max_iters = 300
