# Models arrive with this app's first issue; the app is installed from the start so its
# migrations and admin register in the same place as every other app's.
