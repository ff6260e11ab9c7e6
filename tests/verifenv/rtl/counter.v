// 8-bit up counter with enable and synchronous load; asynchronous active-low reset.
(* keep_hierarchy *)
module counter #(
    parameter WIDTH = 8,
    parameter [WIDTH-1:0] INIT = 0
) (
    input  wire             clk,
    input  wire             rst_n,
    input  wire             en,
    input  wire             load,
    input  wire [WIDTH-1:0] din,
    output reg  [WIDTH-1:0] count,
    output wire             wrap
);
  assign wrap = en && (count == {WIDTH{1'b1}});

  always @(posedge clk or negedge rst_n) begin
    if (!rst_n)
      count <= INIT;
    else if (load)
      count <= din;
    else if (en)
      count <= count + 1'b1;
  end
endmodule
