// Two clock domains: a fast-domain counter whose MSB is synchronised into the slow domain.
module two_clock (
    input  wire       clk_a,
    input  wire       clk_b,
    input  wire       rst_n,
    input  wire       en,
    output reg  [3:0] cnt_a,
    output reg        sync_b
);
  reg meta_b;

  always @(posedge clk_a or negedge rst_n) begin
    if (!rst_n) cnt_a <= 4'd0;
    else if (en) cnt_a <= cnt_a + 4'd1;
  end

  always @(posedge clk_b or negedge rst_n) begin
    if (!rst_n) begin
      meta_b <= 1'b0;
      sync_b <= 1'b0;
    end else begin
      meta_b <= cnt_a[3];
      sync_b <= meta_b;
    end
  end
endmodule
