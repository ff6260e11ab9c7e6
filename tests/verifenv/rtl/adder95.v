// Verilog-1995 style ripple adder with carry in/out (non-ANSI port list).
module adder95 (a, b, cin, sum, cout);
  parameter N = 4;
  input  [N-1:0] a;
  input  [N-1:0] b;
  input          cin;
  output [N-1:0] sum;
  output         cout;
  wire   [N:0]   full;

  assign full = a + b + cin;
  assign sum  = full[N-1:0];
  assign cout = full[N];
endmodule
