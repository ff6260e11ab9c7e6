// valid/ready register slice: one-entry skid-free pipeline stage.
module stream_reg #(
    parameter DW = 16
) (
    input  wire          aclk,
    input  wire          aresetn,
    input  wire [DW-1:0] s_data,
    input  wire          s_valid,
    output wire          s_ready,
    output reg  [DW-1:0] m_data,
    output reg           m_valid,
    input  wire          m_ready
);
  assign s_ready = !m_valid || m_ready;

  always @(posedge aclk) begin
    if (!aresetn) begin
      m_valid <= 1'b0;
    end else if (s_ready) begin
      m_valid <= s_valid;
      if (s_valid)
        m_data <= s_data;
    end
  end
endmodule
