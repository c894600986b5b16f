# launch/plot_losses.py on the shortened demo's metrics.jsonl (written by demo_eval_loss_falls)
# and on files with NaN losses, a resume, a single step, two runs overlaid, and bad input.
set_tests_properties(demo_eval_loss_falls PROPERTIES FIXTURES_SETUP demo_short_metrics)
add_test(NAME plot.losses
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/plot/check_plot_losses.py ${PROJECT_SOURCE_DIR}
          ${CMAKE_CURRENT_BINARY_DIR}/demo_short/metrics.jsonl ${CMAKE_CURRENT_BINARY_DIR}/plot_losses)
set_tests_properties(plot.losses PROPERTIES LABELS "plot;demo" TIMEOUT 300 FIXTURES_REQUIRED demo_short_metrics)
