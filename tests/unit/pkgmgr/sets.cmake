# sets tests: added by the active-sets work
