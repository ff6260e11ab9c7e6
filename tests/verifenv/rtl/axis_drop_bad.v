// A one-deep AXI-Stream register that drops every beat whose tuser marks it bad (like a frame FIFO that
// drops bad frames): with random tuser the transfer scoreboard sees lost data; with tuser held at 0 every
// beat comes out, and the data path is judged.
module axis_drop_bad #(
    parameter DATA_WIDTH = 8
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire [DATA_WIDTH-1:0] s_axis_tdata,
    input  wire                  s_axis_tuser,
    input  wire                  s_axis_tvalid,
    output wire                  s_axis_tready,
    output reg  [DATA_WIDTH-1:0] m_axis_tdata,
    output wire                  m_axis_tuser,
    output reg                   m_axis_tvalid,
    input  wire                  m_axis_tready
);
    assign s_axis_tready = !m_axis_tvalid || m_axis_tready;
    assign m_axis_tuser = 1'b0;

    always @(posedge clk) begin
        if (rst) begin
            m_axis_tvalid <= 1'b0;
            m_axis_tdata <= {DATA_WIDTH{1'b0}};
        end else if (s_axis_tready) begin
            m_axis_tvalid <= s_axis_tvalid && !s_axis_tuser;
            m_axis_tdata <= s_axis_tdata;
        end
    end
endmodule
