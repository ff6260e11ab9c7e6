// file list for pipe_top: relative to this file
+define+PIPE_LIST
-f stream.f
pipe_top.v
