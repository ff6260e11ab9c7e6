// Four 16-bit registers behind a pipelined Wishbone slave: it stalls every other cycle, takes a request
// (cyc, stb, !stall) and acknowledges it one cycle later. Its own checker stops the simulation on a master
// that breaks the bus rules (stb without cyc, or cyc dropped while a request waits for its acknowledge).
module wb_regs (
    input  wire        clk_i,
    input  wire        rst_i,
    input  wire        wb_cyc_i,
    input  wire        wb_stb_i,
    input  wire        wb_we_i,
    input  wire [1:0]  wb_adr_i,
    input  wire [15:0] wb_dat_i,
    input  wire [1:0]  wb_sel_i,
    output reg  [15:0] wb_dat_o,
    output reg         wb_ack_o,
    output wire        wb_stall_o
);
    reg [15:0] regs [0:3];
    reg        busy;
    integer    i;

    assign wb_stall_o = busy;

    always @(posedge clk_i) begin
        if (rst_i) begin
            busy <= 1'b0;
            wb_ack_o <= 1'b0;
            wb_dat_o <= 16'd0;
            for (i = 0; i < 4; i = i + 1) regs[i] <= 16'd0;
        end else begin
            busy <= !busy;
            wb_ack_o <= 1'b0;
            if (wb_cyc_i && wb_stb_i && !wb_stall_o) begin
                if (wb_we_i) begin
                    if (wb_sel_i[0]) regs[wb_adr_i][7:0] <= wb_dat_i[7:0];
                    if (wb_sel_i[1]) regs[wb_adr_i][15:8] <= wb_dat_i[15:8];
                end
                wb_dat_o <= regs[wb_adr_i];
                wb_ack_o <= 1'b1;
            end
        end
    end

    // Protocol checker.
    reg waiting;
    always @(posedge clk_i) begin
        if (rst_i) begin
            waiting <= 1'b0;
        end else begin
            if (wb_stb_i && !wb_cyc_i)
                $error("Wishbone protocol: stb without cyc");
            if (waiting && !wb_cyc_i && !wb_ack_o)
                $error("Wishbone protocol: cyc dropped before the acknowledge");
            if (wb_cyc_i && wb_stb_i && !wb_stall_o) waiting <= 1'b1;
            else if (wb_ack_o) waiting <= 1'b0;
        end
    end
endmodule
