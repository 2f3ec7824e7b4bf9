func runMerchantHarness(_ arguments: [String]) -> Int32 { 2 }
