// A small AXI-Stream FIFO written for the tests: its memory is never reset, so m_axis_tdata/tlast/tuser are X
// while m_axis_tvalid is 0 after reset. The reset sits at the end of the block and overrides what comes before.
module axis_fifo_x #(
    parameter DATA_WIDTH = 8,
    parameter ADDR_WIDTH = 2
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire [DATA_WIDTH-1:0] s_axis_tdata,
    input  wire                  s_axis_tlast,
    input  wire                  s_axis_tuser,
    input  wire                  s_axis_tvalid,
    output wire                  s_axis_tready,
    output wire [DATA_WIDTH-1:0] m_axis_tdata,
    output wire                  m_axis_tlast,
    output wire                  m_axis_tuser,
    output wire                  m_axis_tvalid,
    input  wire                  m_axis_tready
);
    reg [DATA_WIDTH+1:0] mem [0:(1 << ADDR_WIDTH) - 1];
    reg [ADDR_WIDTH:0] wr_ptr;
    reg [ADDR_WIDTH:0] rd_ptr;
    wire empty = wr_ptr == rd_ptr;
    wire full = (wr_ptr[ADDR_WIDTH] != rd_ptr[ADDR_WIDTH]) && (wr_ptr[ADDR_WIDTH-1:0] == rd_ptr[ADDR_WIDTH-1:0]);

    assign s_axis_tready = !full;
    assign m_axis_tvalid = !empty;
    assign {m_axis_tuser, m_axis_tlast, m_axis_tdata} = mem[rd_ptr[ADDR_WIDTH-1:0]];

    always @(posedge clk) begin
        if (s_axis_tvalid && s_axis_tready) begin
            mem[wr_ptr[ADDR_WIDTH-1:0]] <= {s_axis_tuser, s_axis_tlast, s_axis_tdata};
            wr_ptr <= wr_ptr + 1;
        end
        if (m_axis_tvalid && m_axis_tready) begin
            rd_ptr <= rd_ptr + 1;
        end
        if (rst) begin
            wr_ptr <= 0;
            rd_ptr <= 0;
        end
    end
endmodule
