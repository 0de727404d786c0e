"""Project subclasses of the libraries' extension points, so resource modules import only these."""
