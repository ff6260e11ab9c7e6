// A register whose debug port only exists when DEBUG is defined.
module ifdef_ports (
    input  wire       clk,
    input  wire       reset,
`ifdef DEBUG
    output wire [3:0] dbg_state,
`endif
    input  wire [3:0] d,
    output reg  [3:0] q
);
  always @(posedge clk) begin
    if (reset) q <= 4'd0;
    else q <= d;
  end
`ifdef DEBUG
  assign dbg_state = q;
`endif
endmodule
