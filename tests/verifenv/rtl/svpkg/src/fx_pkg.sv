// Types and sizes shared by the fx_ designs.
package fx_pkg;
  localparam int unsigned Depth = 4;
  localparam int unsigned PtrWidth = $clog2(Depth);
  typedef logic [7:0] word_t;
endpackage
