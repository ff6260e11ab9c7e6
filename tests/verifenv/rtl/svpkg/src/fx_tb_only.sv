// Only under Bender's `test` target: the closure of fx_fifo must not pick it up.
module fx_fifo_tb;
  fx_fifo dut (.clk_i(1'b0), .rst_ni(1'b0), .put_i(1'b0), .data_i('0), .full_o(), .take_i(1'b0), .data_o(),
               .empty_o());
endmodule
