// Assertion macros in the lowRISC / PULP style (a label, a property, a clock, a disable condition).
`ifndef FX_ASSERTIONS_SVH
`define FX_ASSERTIONS_SVH
`define ASSERT(__name, __prop, __clk, __rst) \
  __name: assert property (@(posedge __clk) disable iff (__rst) (__prop)) \
    else $error("assertion %s failed", `"__name`");
`define ASSUME(__name, __prop, __clk, __rst) \
  __name: assume property (@(posedge __clk) disable iff (__rst) (__prop)) \
    else $error("assumption %s failed", `"__name`");
`endif
