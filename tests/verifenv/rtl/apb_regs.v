// Four 8-bit registers behind an APB completer with one wait state. Its own checker stops the simulation on a
// requester that breaks the protocol (access without setup, or address changed during a transfer): random
// stimulus does that within a few cycles, an APB requester never does.
module apb_regs (
    input  wire       pclk,
    input  wire       presetn,
    input  wire       psel,
    input  wire       penable,
    input  wire       pwrite,
    input  wire [1:0] paddr,
    input  wire [7:0] pwdata,
    output reg  [7:0] prdata,
    output wire       pready
);
    reg [7:0] regs [0:3];
    reg       wait_done;
    reg       in_setup;
    reg [1:0] held_addr;

    assign pready = wait_done;

    always @(posedge pclk or negedge presetn) begin
        if (!presetn) begin
            regs[0] <= 8'h00;
            regs[1] <= 8'h00;
            regs[2] <= 8'h00;
            regs[3] <= 8'h00;
            wait_done <= 1'b0;
            prdata <= 8'h00;
        end else begin
            wait_done <= psel && penable && !wait_done;
            if (psel && penable && wait_done) begin
                if (pwrite) regs[paddr] <= pwdata;
                else prdata <= regs[paddr];
            end
        end
    end

    // Protocol checker: a transfer starts with a setup cycle and keeps its address until it completes.
    always @(posedge pclk) begin
        if (presetn) begin
            if (penable && !in_setup && !(psel && held_addr == paddr))
                $error("APB protocol: access phase without a setup phase");
            in_setup <= psel && !penable;
            if (psel && !penable) held_addr <= paddr;
            if (psel && penable && wait_done) in_setup <= 1'b0;
        end
    end
endmodule
