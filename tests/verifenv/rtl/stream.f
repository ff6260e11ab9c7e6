stream_reg.v
