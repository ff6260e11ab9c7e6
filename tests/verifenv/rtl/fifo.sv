// Synchronous FIFO: DEPTH entries of WIDTH bits, registered flags, synchronous active-high reset.
module fifo #(
    parameter int WIDTH = 8,
    parameter int DEPTH = 16,
    localparam int AW = $clog2(DEPTH)
) (
    input  logic             clk,
    input  logic             rst,
    input  logic             push,
    input  logic [WIDTH-1:0] wdata,
    input  logic             pop,
    output logic [WIDTH-1:0] rdata,
    output logic             full,
    output logic             empty,
    output logic [AW:0]      level
);
  logic [WIDTH-1:0] mem [DEPTH];
  logic [AW-1:0] wptr, rptr;

  // The environment must never push when full nor pop when empty.
  always_ff @(posedge clk) begin
    if (!rst) begin
      assert (!(push && full)) else $error("push while full");
      assert (!(pop && empty)) else $error("pop while empty");
    end
  end

  always_ff @(posedge clk) begin
    if (rst) begin
      wptr  <= '0;
      rptr  <= '0;
      level <= '0;
    end else begin
      if (push) begin
        mem[wptr] <= wdata;
        wptr <= wptr + 1'b1;
      end
      if (pop)
        rptr <= rptr + 1'b1;
      level <= level + (push ? 1 : 0) - (pop ? 1 : 0);
    end
  end

  assign rdata = mem[rptr];
  assign full  = (level == DEPTH[AW:0]);
  assign empty = (level == 0);
endmodule
