// Two stream_reg stages in series: a hierarchy for the file-closure tests.
module pipe_top #(parameter W = 8) (
    input  wire         clk,
    input  wire         rst_n,
    input  wire [W-1:0] in_data,
    input  wire         in_valid,
    output wire         in_ready,
    output wire [W-1:0] out_data,
    output wire         out_valid,
    input  wire         out_ready
);
  wire [W-1:0] mid_data;
  wire         mid_valid, mid_ready;

  stream_reg #(.DW(W)) u_first (
      .aclk(clk), .aresetn(rst_n), .s_data(in_data), .s_valid(in_valid), .s_ready(in_ready),
      .m_data(mid_data), .m_valid(mid_valid), .m_ready(mid_ready));
  stream_reg #(.DW(W)) u_second (
      .aclk(clk), .aresetn(rst_n), .s_data(mid_data), .s_valid(mid_valid), .s_ready(mid_ready),
      .m_data(out_data), .m_valid(out_valid), .m_ready(out_ready));
endmodule
