from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def home(request):
    """The project picker; everything it shows is loaded from the API by the page itself."""
    return render(request, "frontend/home.html")
