/* Throw-away test keys for fuzz_jwks (generated with openssl genpkey for
 * this harness only; never used anywhere else). */

static const char  fixed_key_rsa[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC2h+GbLKkskWvF\n"
    "fbkx5Q69ngXSZ0TvIKx1Fg3burDfHt03NwNDWFpg2WA8zQVzObYzla4vkHdzBPKQ\n"
    "t39BwtjPd4A9z+2cSP4NFkvcHrM/zVFMyTlRViBip/lWVvm1mHJLN64FqdNLJNGN\n"
    "GyTQ5vLA1CLWG8WjFLP/6ibD96huxt9JWYq1WpGb4KwrdJ0Kj0W4rQ2TDphRq2Rf\n"
    "vbIwzMmSAbbO/a4SBXXsi6YI3+SkKRtuoYCDVZ5EpPTjXHssI/ow7Ru7Rv/2t+M+\n"
    "wfOf0FmOotW18m5GoPpB1VG5v5U8T4iG+Aoor1WrGU6y85AP51AUCj88LeVmyL1I\n"
    "ugDNOYRRAgMBAAECggEADW5Mx5Fb0DE4UZUklUswlshAnAPh4SL+cM3siCBusLd0\n"
    "xjU2+SbqEFoX+3FUkNVyyc0ePr0hGCZv8mRMkCcWGZhf9QYBpGNq+iu+7W8yEYqt\n"
    "WRQtzDilQM0kviZZN0EEsljImWPh7cbdFBNAVfTG12R+POxY0kNzbGwrNqk+/6OX\n"
    "XMA/JKokvrum/Ng7lFKGkceMK1jqTtRnp3keUkHyy8wOoSKb3ICjTWbxxQ8LPlAj\n"
    "c0DIx5NQo386bSPaiWJbAXYSeh2akAa/8DLj8SjuEFSBc8ieZeFSXYnyD3/Nf7vX\n"
    "EQ08xxiGShVipmfmzIeeCpHh5BOdjwVttCWehgP5rwKBgQD7cZ+oE9O9zCFWpbp8\n"
    "8tJpo2NBl4IN91txhqicXDtJdXsOzUcJlTwzSK066DPaoVkLCPfc/LNVuJ7/vUCg\n"
    "r2vrIyzwEopnMbJCQTibBot+pC3vUpSL7bZwDAoZCSYTsRuXuwvPb+o01x5v01r6\n"
    "Pu5aCODz9qGu7eM9/b735Sd26wKBgQC51pbu7Nzal4i2SfoVO8tAfxK/pUHjEaLL\n"
    "7Qy6zyT+YYvnt2lI5tOvsE33OoOPdRJ88wJsryZk6nYBqGPTCCQYmQptGuU27IXs\n"
    "5X9Q2yKXe1/UrdKG+XyJWM8qcxnDexbJDmnlCGJQPUYB+ulmGwnHz6JJOCoJpNZG\n"
    "pTdWaUiaswKBgCPOwZLZB/1udYz2WwFyPx7GIttzbRT6Fe6r45Uo2VSTw2uPNj+a\n"
    "HhGblvfdm4zWD20v4MR6xDs/6Hy5AdwgPzkkMEEcEtOxUxZ2XU5Od00YqmX7l6X5\n"
    "u1JnlISONfr17N0FyR/Ia00NGYuJSNp8Xcs6mnaDt/DGdecdHLYGz0DzAoGBALdT\n"
    "bMO4IEr3j+Mb6TvHJ8OxV8J8+RlSjYGUkKk8rabQfd6RfahwJUW8q70HGT+M4zcl\n"
    "1y92PW7yKIWMIyXMcydc2f81uAbNn3RKFaWi92XuTGQXMYb7WRJ47K1YrIK9y4V9\n"
    "1ZMeCTZUq9pKNrMGW0ikmNiYMkgfN06rr4JsDDanAoGBALsEN1MuGOCc1cC+HVJ1\n"
    "tiur2yc0lnssp6jrC5a/qoVRs+f2YYVhx2zkv7tTEIg70i+ZP8w5ErW9oFQksV5y\n"
    "KsgONqQhkAk4Lsi3dU2c6qaZm8OXW9MAq3RpiDr091OeDhpTse5N+Vtws4F5cuC5\n"
    "UPblJqpA61G6VCCyE/1o0qWF\n"
    "-----END PRIVATE KEY-----\n"
    ;

static const char  fixed_key_ec[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPFc+1NYkE480op8z\n"
    "MK8QDc1x94AUY79MC9GgNBC+6OmhRANCAASbu7eVo2r5EhVhUnYuiHs7ngjms8o6\n"
    "NOC7kWp10tUYiAlpCusNk8haqLS9QupJyxO92F1vdfcg6M7Y7lXCvw16\n"
    "-----END PRIVATE KEY-----\n"
    ;

static const char  fixed_key_ed[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIM9F2+1nnFw6fKcq2B4/cinetzu1dhWybDiTocYushtU\n"
    "-----END PRIVATE KEY-----\n"
    ;

