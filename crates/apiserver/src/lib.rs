//! apiserver (being assembled: the lead keeps the full module list aside until the pieces land)
