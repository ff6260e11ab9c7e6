// Four 32-bit registers behind an AXI4-Lite slave: address and data are taken independently (each ready for
// one cycle), the write happens once both are in, and the response and read data are held until the master
// takes them. Its own checker stops the simulation when a master breaks the handshake rules (a valid withdrawn,
// or its payload changed, before the slave took it).
module axil_regs (
    input  wire        clk,
    input  wire        rst,
    input  wire [3:0]  s_axil_awaddr,
    input  wire [2:0]  s_axil_awprot,
    input  wire        s_axil_awvalid,
    output reg         s_axil_awready,
    input  wire [31:0] s_axil_wdata,
    input  wire [3:0]  s_axil_wstrb,
    input  wire        s_axil_wvalid,
    output reg         s_axil_wready,
    output wire [1:0]  s_axil_bresp,
    output reg         s_axil_bvalid,
    input  wire        s_axil_bready,
    input  wire [3:0]  s_axil_araddr,
    input  wire [2:0]  s_axil_arprot,
    input  wire        s_axil_arvalid,
    output reg         s_axil_arready,
    output reg  [31:0] s_axil_rdata,
    output wire [1:0]  s_axil_rresp,
    output reg         s_axil_rvalid,
    input  wire        s_axil_rready
);
    reg [31:0] regs [0:3];
    reg [1:0]  wr_addr;
    reg        have_addr, have_data;
    reg [31:0] wr_data;
    reg [3:0]  wr_strb;
    integer    i;

    assign s_axil_bresp = 2'b00;
    assign s_axil_rresp = 2'b00;

    always @(posedge clk) begin
        if (rst) begin
            s_axil_awready <= 1'b0;
            s_axil_wready <= 1'b0;
            s_axil_bvalid <= 1'b0;
            s_axil_arready <= 1'b0;
            s_axil_rvalid <= 1'b0;
            s_axil_rdata <= 32'd0;
            have_addr <= 1'b0;
            have_data <= 1'b0;
            wr_addr <= 2'd0;
            wr_data <= 32'd0;
            wr_strb <= 4'd0;
            for (i = 0; i < 4; i = i + 1) regs[i] <= 32'd0;
        end else begin
            s_axil_awready <= 1'b0;
            s_axil_wready <= 1'b0;
            s_axil_arready <= 1'b0;
            if (s_axil_awvalid && !s_axil_awready && !have_addr) begin
                s_axil_awready <= 1'b1;
                have_addr <= 1'b1;
                wr_addr <= s_axil_awaddr[3:2];
            end
            if (s_axil_wvalid && !s_axil_wready && !have_data) begin
                s_axil_wready <= 1'b1;
                have_data <= 1'b1;
                wr_data <= s_axil_wdata;
                wr_strb <= s_axil_wstrb;
            end
            if (have_addr && have_data && !s_axil_bvalid) begin
                for (i = 0; i < 4; i = i + 1)
                    if (wr_strb[i]) regs[wr_addr][8*i +: 8] <= wr_data[8*i +: 8];
                s_axil_bvalid <= 1'b1;
            end
            if (s_axil_bvalid && s_axil_bready) begin
                s_axil_bvalid <= 1'b0;
                have_addr <= 1'b0;
                have_data <= 1'b0;
            end
            if (s_axil_arvalid && !s_axil_arready && !s_axil_rvalid) begin
                s_axil_arready <= 1'b1;
                s_axil_rdata <= regs[s_axil_araddr[3:2]];
                s_axil_rvalid <= 1'b1;
            end
            if (s_axil_rvalid && s_axil_rready) s_axil_rvalid <= 1'b0;
        end
    end

    // Protocol checker: a valid stays up, with its payload unchanged, until the slave takes it.
    reg        aw_wait, w_wait, ar_wait;
    reg [3:0]  aw_held, ar_held;
    reg [31:0] w_held;
    always @(posedge clk) begin
        if (rst) begin
            aw_wait <= 1'b0;
            w_wait <= 1'b0;
            ar_wait <= 1'b0;
        end else begin
            if (aw_wait && (!s_axil_awvalid || s_axil_awaddr != aw_held))
                $error("AXI protocol: awvalid withdrawn or awaddr changed before awready");
            if (w_wait && (!s_axil_wvalid || s_axil_wdata != w_held))
                $error("AXI protocol: wvalid withdrawn or wdata changed before wready");
            if (ar_wait && (!s_axil_arvalid || s_axil_araddr != ar_held))
                $error("AXI protocol: arvalid withdrawn or araddr changed before arready");
            aw_wait <= s_axil_awvalid && !s_axil_awready;
            w_wait <= s_axil_wvalid && !s_axil_wready;
            ar_wait <= s_axil_arvalid && !s_axil_arready;
            aw_held <= s_axil_awaddr;
            w_held <= s_axil_wdata;
            ar_held <= s_axil_araddr;
        end
    end
endmodule
