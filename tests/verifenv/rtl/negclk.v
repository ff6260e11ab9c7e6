// Falling-edge register with an unpacked-array input (left undriven by the generated environment).
module negclk (
    input  wire       clk,
    input  wire       rst,
    input  wire [3:0] d,
    input  wire [7:0] tbl [0:3],
    output reg  [3:0] q
);
  always @(negedge clk) begin
    if (rst) q <= 4'd0;
    else q <= d;
  end
endmodule
