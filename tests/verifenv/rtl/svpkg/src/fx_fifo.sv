// A FIFO whose port types come from a package and whose protocol rules are written as assertion macros.
`include "fx/assertions.svh"

module fx_fifo (
  input  logic          clk_i,
  input  logic          rst_ni,
  input  logic          put_i,
  input  fx_pkg::word_t data_i,
  output logic          full_o,
  input  logic          take_i,
  output fx_pkg::word_t data_o,
  output logic          empty_o
);
  import fx_pkg::*;

  word_t mem [Depth];
  logic [PtrWidth:0] wptr, rptr;

  assign empty_o = wptr == rptr;
  assign full_o = (wptr[PtrWidth] != rptr[PtrWidth]) && (wptr[PtrWidth-1:0] == rptr[PtrWidth-1:0]);
  assign data_o = mem[rptr[PtrWidth-1:0]];

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      wptr <= '0;
      rptr <= '0;
    end else begin
      if (put_i) wptr <= wptr + 1'b1;
      if (take_i) rptr <= rptr + 1'b1;
    end
  end

  always_ff @(posedge clk_i) begin
    if (put_i) mem[wptr[PtrWidth-1:0]] <= data_i;
  end

  `ASSERT(put_full, full_o |-> !put_i, clk_i, !rst_ni)
  `ASSUME(take_empty, empty_o |-> !take_i, clk_i, !rst_ni)
endmodule
