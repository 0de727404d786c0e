"""Back-payments 补缴 (政策性补缴、中断补缴) approved by the HR and medical-insurance bureaus."""
