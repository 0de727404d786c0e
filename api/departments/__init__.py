"""Department lists (民政/残联/扶贫办/卫健/公安) and their 代缴 batches (issue 13).

`codes` — which department owns which categories or events, and who pays a person's medical
代缴; `lists` — upload → preview → apply (late lists need finance's approval); `effects` —
what an applied change does to orders, refunds and contributions, exactly once; `batches` —
the per-department 代缴 batch (book, reimburse the person, reverse), maker–checker with finance.
"""
