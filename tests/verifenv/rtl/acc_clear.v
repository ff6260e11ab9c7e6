// An accumulator whose only reset is a synchronous, active-high `clear`: nothing in its name says reset.
module acc_clear (
    input  wire       clk,
    input  wire       clear,
    input  wire       en,
    input  wire [7:0] din,
    output reg  [7:0] sum,
    output reg        carry
);
    always @(posedge clk) begin
        if (clear) begin
            sum <= 8'd0;
            carry <= 1'b0;
        end else if (en) begin
            {carry, sum} <= {1'b0, sum} + {1'b0, din};
        end
    end
endmodule
